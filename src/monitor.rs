//! Once a second: is Redis there (readiness, `hookd_redis_up`), the queue
//! gauges, and the event log's retention.

mod removed_sources;

pub use removed_sources::RemovedSources;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::overview;
use crate::queue::{Forgot, LEGACY_GROUP, OrphanGroup, Queue, Unusable};
use crate::source::{Source, Sources};
use crate::status::Status;
use crate::telemetry;
use crate::workers::Workers;

/// How long the first health check waits for Redis to connect (its
/// connection timeout).
const FIRST_CONNECT: Duration = Duration::from_secs(2);

/// How long one step of the tick (a source's gauges or its consumer
/// groups' tidy, the durability check) may wait for Redis before the tick
/// moves on: Redis dying mid-tick must not hold up the next ping, which
/// readiness depends on.
const STEP_LIMIT: Duration = Duration::from_millis(500);

pub struct Monitor {
    pub queue: Queue,
    pub status: Arc<Status>,
    pub sources: Arc<Sources>,
    pub workers: Workers,
    pub metrics: PrometheusHandle,
    /// Whether ingest spools while Redis is away (for what the log says).
    pub spool_on: bool,
    /// `redis.url` with its password redacted: which Redis the log means.
    pub redis: String,
    /// `worker.claim_idle`: a group none of whose readers read for this
    /// long has no live reader.
    pub claim_idle: Duration,
}

impl Monitor {
    pub async fn run(self, token: CancellationToken) {
        // Per source: whether its log was being shed for memory, so the
        // log says so once when it starts and once when it ends.
        let mut shedding = vec![false; self.sources.iter().count()];
        // Per source: set whenever Redis (re)appears, cleared once its
        // consumer groups were tidied, so a tidy that Redis dying cut
        // short runs again on a later tick.
        let mut untidy = vec![true; self.sources.iter().count()];
        // What the tidy said since Redis last came (back).
        let mut told = HashSet::new();
        // Why Redis is away, from the connections' own reports (subscribed
        // before the first check, so the first connection attempts count),
        // and the reasons the log gave during this outage.
        let mut connection_errors = self.queue.connection_errors();
        let mut reason: Option<String> = None;
        let mut logged_reasons: Vec<String> = Vec::new();
        // The first check waits for the connections hookd is opening: a
        // ping failing fast while they connect would call Redis away for a
        // whole tick.
        tokio::select! {
            _ = token.cancelled() => return,
            _ = self.queue.connected_within(FIRST_CONNECT) => {}
        }
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = token.cancelled() => return,
                _ = tick.tick() => {}
            }
            // Histogram samples pile up in the recorder until drained;
            // without this, memory grows with every event when nobody
            // scrapes /metrics.
            self.metrics.run_upkeep();
            let check = self.queue.check().await;
            let up = check.is_ok();
            // Drained every tick: what a blip reported while Redis was up
            // is not the reason for an outage hours later.
            let latest = connection_errors.latest();
            let refused = matches!(check, Err(Unusable::Refused(_)));
            match check {
                Ok(()) => reason = None,
                // Redis answered: its refusal is the reason.
                Err(Unusable::Refused(why)) => reason = Some(why),
                // The connections' own words beat the PING's (which only
                // knows that it failed or timed out).
                Err(Unusable::Unreachable(failed)) => match latest {
                    Some(error) => reason = Some(error),
                    None if reason.is_none() => reason = Some(failed),
                    None => {}
                },
            }
            self.status.set_redis_error(reason.clone().map(|why| {
                if refused {
                    Unusable::Refused(why)
                } else {
                    Unusable::Unreachable(why)
                }
            }));
            // The first check says what it found either way.
            if self.status.set_redis_up(up) != Some(up) {
                if up {
                    untidy.fill(true);
                    told.clear();
                    logged_reasons.clear();
                    info!(redis = %self.redis, "redis is reachable");
                    // Bounded: Redis dying again at once must not hold up
                    // the next ping; the warnings come on its next return.
                    let warnings =
                        tokio::time::timeout(STEP_LIMIT, self.queue.durability_warnings());
                    for warning in warnings.await.unwrap_or_default() {
                        warn!("{warning}");
                    }
                } else {
                    let error = reason.as_deref().unwrap_or_default();
                    match (refused, self.spool_on) {
                        (true, true) => {
                            error!(redis = %self.redis, error, "redis refuses hookd's commands: events go to the spool until it takes them")
                        }
                        (true, false) => {
                            error!(redis = %self.redis, error, "redis refuses hookd's commands: ingest answers 503 until it takes them")
                        }
                        (false, true) => {
                            warn!(redis = %self.redis, error, "redis is unreachable: events go to the spool until it returns")
                        }
                        (false, false) => {
                            warn!(redis = %self.redis, error, "redis is unreachable: ingest answers 503 until it returns")
                        }
                    }
                    logged_reasons.extend(reason.clone());
                }
            } else if let Some(error) = reason
                .as_ref()
                .filter(|r| !up && !logged_reasons.contains(r))
            {
                // Still away, for another reason now (refused, then a
                // wrong password once it is back): each reason said once
                // per outage, however the connections alternate them.
                if refused {
                    error!(redis = %self.redis, error = %error, "redis refuses hookd's commands");
                } else {
                    warn!(redis = %self.redis, error = %error, "redis is still unreachable");
                }
                logged_reasons.push(error.clone());
            }
            metrics::gauge!(telemetry::REDIS_UP).set(if up { 1.0 } else { 0.0 });
            metrics::gauge!(telemetry::WORKERS_BUSY).set(self.workers.busy() as f64);
            if !up {
                continue;
            }
            for ((source, untidy), shedding) in self
                .sources
                .iter()
                .zip(untidy.iter_mut())
                .zip(shedding.iter_mut())
            {
                // Bounded: Redis dying between the ping and here must not
                // hold up the next ping (readiness depends on it).
                let view = tokio::time::timeout(STEP_LIMIT, overview::source(&self.queue, source));
                if let Ok(Ok(view)) = view.await {
                    source.metrics.dlq_size.set(view.dlq as f64);
                    for (destination, d) in source.destinations.iter().zip(&view.destinations) {
                        let metrics = &destination.metrics;
                        metrics.backlog.set(d.backlog.unwrap_or(0) as f64);
                        metrics.pending.set(d.pending as f64);
                        metrics.retry_scheduled.set(d.retrying as f64);
                        metrics.state(d.status.state());
                    }
                    if *untidy {
                        // Bounded like the gauges: Redis dying right after
                        // coming back must not hold up the next ping.
                        let tidy = self.tidy_groups(source, &view.orphans, &mut told);
                        *untidy = !matches!(
                            tokio::time::timeout(STEP_LIMIT, tidy).await,
                            Ok(Tidied::All)
                        );
                    }
                }
                // Bounded like the gauges: the next ping must not wait.
                if let Ok(trimmed) =
                    tokio::time::timeout(TRIM_LIMIT, trim(&self.queue, source)).await
                    && trimmed.shed != *shedding
                {
                    *shedding = trimmed.shed;
                    if trimmed.shed {
                        warn!(
                            source = %source.name,
                            "redis is near maxmemory: the event log keeps no finished events until it is not"
                        );
                    } else {
                        info!(source = %source.name, "the event log keeps its history again");
                    }
                }
            }
        }
    }

    /// Whenever Redis comes (back), and every tick while one is in use:
    /// consumer groups of destinations this configuration does not name
    /// (`orphans`, from the tick's read of the source) go
    /// if nobody uses them. One that still holds events is kept (its events
    /// stay in the stream) with a warning until `hookd destinations
    /// forget`; one another instance reads, or that is paused or held by
    /// its breaker, is kept while it is (a rolling configuration change:
    /// other instances may still, or already, name the destination).
    /// `told` holds what the log already said, so each is said once.
    async fn tidy_groups(
        &self,
        source: &Source,
        orphans: &[OrphanGroup],
        told: &mut HashSet<Told>,
    ) -> Tidied {
        let mut tidied = Tidied::All;
        for orphan in orphans {
            if orphan.name == LEGACY_GROUP {
                // Migrated by the readers' setup.
                continue;
            }
            let about = |verdict| Told {
                source: source.name.to_string(),
                destination: orphan.name.clone(),
                verdict,
            };
            let in_use = |told: &mut HashSet<Told>| {
                if told.insert(about(Verdict::InUse)) {
                    info!(
                        source = %source.name,
                        destination = %orphan.name,
                        "a destination no longer configured here is in use (another instance reads it, \
                         or it is paused or held by its breaker): its group stays while it is \
                         (a configuration change under way?)"
                    );
                }
            };
            let read_lately = orphan.read_within(self.claim_idle);
            if orphan.holds_events() {
                if told.insert(about(Verdict::HoldsEvents)) {
                    warn!(
                        source = %source.name,
                        destination = %orphan.name,
                        backlog = ?orphan.backlog,
                        pending = orphan.pending,
                        last_read_ms_ago = ?orphan.last_read_ago.map(|ago| ago.as_millis()),
                        "a destination no longer configured here has undelivered events; they stay in \
                         redis (holding the stream's entries) until an instance whose configuration \
                         names it delivers them, or `hookd destinations forget {} {}`",
                        source.name,
                        orphan.name
                    );
                }
                if read_lately {
                    // Someone may be delivering them: once done, the group
                    // may go.
                    tidied = Tidied::Partly;
                }
                continue;
            }
            if read_lately {
                in_use(told);
                tidied = Tidied::Partly;
                continue;
            }
            let keys = source.keys.destination(&orphan.name);
            match self
                .queue
                .forget_unused(&source.keys, &keys, self.claim_idle)
                .await
            {
                Ok(Forgot::Forgotten) => {
                    info!(source = %source.name, destination = %orphan.name, "removed the idle consumer group of a destination no longer configured");
                }
                Ok(Forgot::NoGroup) => {}
                // Paused, held by its breaker, or read since the look
                // above: looked at again next tick.
                Ok(Forgot::InUse) => {
                    in_use(told);
                    tidied = Tidied::Partly;
                }
                Err(_) => tidied = Tidied::Partly,
            }
        }
        tidied
    }
}

/// Something the log said about a group no destination here names.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct Told {
    source: String,
    destination: String,
    verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Verdict {
    InUse,
    HoldsEvents,
}

/// Whether a source's consumer groups were all looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tidied {
    All,
    Partly,
}

/// How long one source's trimming may take per tick.
const TRIM_LIMIT: Duration = Duration::from_millis(800);
/// Entries one trim step examines: about a millisecond of Redis's time,
/// so ingest and acknowledgements slip in between steps.
const TRIM_BUDGET: usize = 1024;
/// Steps one tick takes per source at most: ~160k entries a second keeps
/// up with any ingest rate this daemon reaches; the rest waits a tick.
const TRIM_STEPS: usize = 160;

/// The event log's retention for one source: removes the entries every
/// destination is done with that are outside `history` (all of them with
/// the log off), in bounded steps.
pub async fn trim(queue: &Queue, source: &Source) -> Trimmed {
    let keys: Vec<_> = source.destinations.iter().map(|d| &d.keys).collect();
    let (max_events, max_age) = if source.history.enabled() {
        (source.history.max_events, source.history.max_age)
    } else {
        (0, Duration::ZERO)
    };
    let mut trimmed = Trimmed::default();
    for _ in 0..TRIM_STEPS {
        match queue
            .trim(&source.keys, &keys, max_events, max_age, TRIM_BUDGET)
            .await
        {
            Ok(step) => {
                trimmed.deleted += step.deleted;
                trimmed.shed |= step.shed;
                if !step.more {
                    break;
                }
            }
            Err(e) => {
                tracing::debug!(source = %source.name, error = %e, "trimming the event log failed");
                break;
            }
        }
    }
    trimmed
}

/// What one tick's trim of a source did.
#[derive(Debug, Default, Clone, Copy)]
pub struct Trimmed {
    pub deleted: u64,
    /// Redis was near maxmemory, so finished events went whatever the
    /// history says.
    pub shed: bool,
}

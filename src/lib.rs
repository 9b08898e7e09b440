//! hookd: verified, de-duplicated, durable webhook ingest into Redis
//! Streams, and reliable delivery to the user's services.
//!
//! The data path: [`server`] accepts connections and [`routes`] hands
//! `/webhooks/*` to [`ingest`], which checks the request ([`verify`],
//! [`extract`]) and stores it through [`queue`]; [`delivery`] reads each
//! source's stream and delivers to its destination. Around it: [`admin`]
//! and [`dlq`] for operators, [`health`], [`telemetry`], [`config`].
//!
//! [`build`] derives everything from the configuration (what
//! `hookd check-config` checks); [`run`] is the whole daemon.
#![forbid(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod delivery;
pub mod dlq;
pub mod events;
pub mod extract;
pub mod filter;
pub mod health;
pub mod ingest;
pub mod listing;
pub mod monitor;
pub mod overview;
pub mod queue;
pub mod response;
pub mod routes;
pub mod server;
pub mod shown;
pub mod source;
pub mod spool;
pub mod status;
pub mod telemetry;
pub mod verify;
pub mod workers;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

pub use clock::{unix_ms, unix_secs};

use crate::admin::AdminHandle;
use crate::config::Config;
use crate::health::HealthHandle;
use crate::ingest::IngestHandle;
use crate::queue::{IngestSettings, Ingestor, Queue, QueueError, RedisSettings};
use crate::routes::{AdminRoutes, PublicRoutes};
use crate::source::{Source, Sources};
use crate::status::Status;
use crate::workers::Workers;

/// Sockets the daemon serves on; bound by the caller so tests can use port 0.
pub struct Listeners {
    pub public: TcpListener,
    pub admin: TcpListener,
}

impl Listeners {
    pub async fn bind(config: &Config) -> std::io::Result<Self> {
        Ok(Self {
            public: TcpListener::bind(config.server.listen).await?,
            admin: TcpListener::bind(config.admin.listen).await?,
        })
    }
}

/// What the configuration does not survive being built into.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("invalid configuration: {0}")]
    Source(#[from] source::SourceError),
    #[error("cannot set up redis: {0}")]
    Redis(#[from] QueueError),
    #[error("cannot set up the delivery client: {0}")]
    Delivery(#[from] delivery::DeliveryError),
    #[error("invalid configuration: spool.dir: {0}")]
    Spool(#[source] spool::SpoolError),
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Build(#[from] BuildError),
    #[error("cannot set up redis: {0}")]
    Redis(#[from] QueueError),
    #[error("cannot read listener address: {0}")]
    Listener(#[from] std::io::Error),
    #[error("cannot open the spool: {0}")]
    Spool(#[from] spool::SpoolError),
}

/// Concurrent ingest script calls per source (see `queue::Ingestor`).
pub const INGEST_WRITERS: usize = 2;

/// How long shutdown waits for Redis to tidy up (leave the consumer
/// groups, close connections).
const TIDY_LIMIT: Duration = Duration::from_secs(1);

/// With the spool on, Redis counts as hung (and events go to the spool)
/// after this long without an answer, for a request and for the health
/// check alike.
const HUNG_WITH_SPOOL: Duration = Duration::from_millis(500);

/// How long after `shutdown.timeout` the last steps of a shutdown may take
/// (design: exit within drain_delay + timeout + 1 s).
const SHUTDOWN_GRACE: Duration = Duration::from_millis(800);

/// One [`Ingestor`] per source, by name, with its writers on `tasks`.
pub fn start_ingestors<'a>(
    queue: &Queue,
    sources: impl IntoIterator<Item = &'a Source>,
    settings: IngestSettings,
    tasks: &TaskTracker,
) -> HashMap<String, Ingestor> {
    sources
        .into_iter()
        .map(|s| {
            let destinations = s.destination_names().map(str::to_owned).collect();
            let ingestor = Ingestor::start(
                queue,
                s.keys.clone(),
                destinations,
                s.heir(),
                s.entry_ids(),
                settings,
                tasks,
            );
            (s.name.clone(), ingestor)
        })
        .collect()
}

/// Everything derived from the configuration before anything starts.
pub struct Plan {
    config: Config,
    redis: RedisSettings,
    sources: Sources,
    delivery: delivery::Settings,
    metrics: PrometheusHandle,
}

/// Builds every part `run` builds, each from its part of the
/// configuration, without connecting anywhere: `hookd check-config` calls
/// this, so it refuses exactly what `run` would.
pub fn build(config: Config) -> Result<Plan, BuildError> {
    // First: each source registers its metric handles with the recorder.
    let metrics = telemetry::install();
    let redis = RedisSettings::build(
        &config.redis.url,
        config.redis.pool_size,
        &config.redis.key_prefix,
    )?;
    let mut sources = Sources::default();
    for (index, source) in config.sources.iter().enumerate() {
        sources.insert(Source::build(source, index, &config.redis.key_prefix)?);
    }
    let delivery = delivery::Settings::build()?;
    if config.spool.enabled() {
        spool::Spool::check(&config.spool).map_err(BuildError::Spool)?;
    }
    Ok(Plan {
        config,
        redis,
        sources,
        delivery,
        metrics,
    })
}

/// Runs the daemon until `shutdown` is cancelled, then drains in the order
/// fixed by the design: not ready → drain_delay → stop accepting → finish
/// in-flight requests → stop reading streams → finish in-flight deliveries,
/// all bounded by `shutdown.timeout`.
pub async fn run(
    config: Config,
    listeners: Listeners,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    build(config)?.run(listeners, shutdown).await
}

impl Plan {
    pub async fn run(
        self,
        listeners: Listeners,
        shutdown: CancellationToken,
    ) -> Result<(), RunError> {
        let Plan {
            config,
            redis,
            sources,
            delivery,
            metrics,
        } = self;
        // Connects in the background: a Redis that is down at startup is
        // not fatal, readiness reports it until it comes.
        let spool_tasks = TaskTracker::new();
        let spool = if config.spool.enabled() {
            let spool = spool::Spool::open(&config.spool, &spool_tasks)?;
            let stats = spool.stats();
            info!(dir = %config.spool.dir.display(), events = stats.events, bytes = stats.bytes, "spool opened");
            if let Some(warning) = spool::Spool::short_of_disk(&config.spool) {
                warn!("{warning}");
            }
            Some(spool)
        } else {
            // Exported either way, so dashboards and alerts read 0.
            metrics::gauge!(telemetry::SPOOL_EVENTS).set(0.0);
            metrics::gauge!(telemetry::SPOOL_BYTES).set(0.0);
            None
        };
        spool_tasks.close();
        let mut queue = Queue::connect(&redis)?;
        if spool.is_some() {
            queue = queue.with_ping_timeout(HUNG_WITH_SPOOL);
        }
        let status = Arc::new(Status::default());
        let sources = Arc::new(sources);
        let workers = Workers::new(config.worker.concurrency);
        metrics::gauge!(telemetry::WORKERS_MAX).set(config.worker.concurrency as f64);
        let public_addr = listeners.public.local_addr()?;
        let admin_addr = listeners.admin.local_addr()?;

        // One token per subsystem, cancelled one after the other below: the
        // drain order matters, so they are not children of `shutdown` (which
        // would cancel them all at once).
        let http_token = CancellationToken::new();
        let pipeline_token = CancellationToken::new();
        let background_token = CancellationToken::new();

        let writers = TaskTracker::new();
        let settings = IngestSettings {
            writers: INGEST_WRITERS,
            dedup_ttl: config.ingest.dedup_ttl,
            max_backlog: config.ingest.max_backlog,
            timeout: if spool.is_some() {
                HUNG_WITH_SPOOL
            } else {
                queue::INGEST_TIMEOUT
            },
        };
        let ingestors = start_ingestors(&queue, sources.iter().map(|s| &**s), settings, &writers);
        writers.close();
        let direct: HashMap<String, queue::DirectIngest> = ingestors
            .iter()
            .map(|(name, ingestor)| (name.clone(), ingestor.direct()))
            .collect();
        let health = HealthHandle {
            status: status.clone(),
            queue: queue.clone(),
            sources: sources.clone(),
            workers: workers.clone(),
            spool: spool.clone(),
        };
        let public = Arc::new(PublicRoutes {
            ingest: IngestHandle::new(
                &sources,
                ingestors,
                status.clone(),
                &config.server,
                spool.clone(),
            ),
            health: health.clone(),
            metrics: metrics.clone(),
        });
        let operations = TaskTracker::new();
        let admin = Arc::new(AdminRoutes {
            admin: AdminHandle::new(
                queue.clone(),
                sources.clone(),
                status.clone(),
                config.admin.token.clone(),
                operations.clone(),
            ),
            health,
            metrics: metrics.clone(),
        });
        let limits = server::Limits::build(&config.server);
        let servers = TaskTracker::new();
        let connections = TaskTracker::new();
        servers.spawn(server::serve(
            listeners.public,
            limits,
            public,
            http_token.clone(),
            connections.clone(),
        ));
        servers.spawn(server::serve(
            listeners.admin,
            limits,
            admin,
            http_token.clone(),
            connections.clone(),
        ));
        servers.close();
        info!(addr = %public_addr, "public listener bound");
        info!(addr = %admin_addr, "admin listener bound");

        let background = TaskTracker::new();
        background.spawn(
            monitor::Monitor {
                queue: queue.clone(),
                status: status.clone(),
                sources: sources.clone(),
                workers: workers.clone(),
                metrics,
                spool_on: spool.is_some(),
                redis: redis.shown().to_owned(),
                claim_idle: config.worker.claim_idle,
            }
            .run(background_token.clone()),
        );
        background.spawn(
            monitor::RemovedSources {
                queue: queue.clone(),
                sources: sources.clone(),
                prefix: config.redis.key_prefix.clone(),
            }
            .report(background_token.clone()),
        );
        if let Some(spool) = &spool {
            background.spawn(
                spool::Drainer {
                    spool: spool.clone(),
                    ingest: Arc::new(direct),
                    status: status.clone(),
                }
                .run(pipeline_token.clone()),
            );
        }
        background.close();

        let deliveries = TaskTracker::new();
        let pipeline = delivery::Pipeline::start(
            delivery,
            delivery::Context {
                queue: queue.clone(),
                sources: sources.clone(),
                workers: workers.clone(),
                worker: config.worker.clone(),
            },
            pipeline_token.clone(),
            deliveries.clone(),
        );

        info!(
            sources = sources.len(),
            version = env!("CARGO_PKG_VERSION"),
            "hookd started"
        );
        shutdown.cancelled().await;

        info!("shutdown requested: readiness now fails");
        status.start_draining();
        tokio::time::sleep(config.shutdown.drain_delay).await;
        let deadline = tokio::time::Instant::now() + config.shutdown.timeout;

        info!("closing listeners, finishing in-flight requests");
        http_token.cancel();
        if tokio::time::timeout_at(deadline, servers.wait())
            .await
            .is_err()
        {
            warn!("in-flight requests did not finish within shutdown.timeout");
        }
        connections.close();
        // Bulk replays and purges whose client left run on until done.
        operations.close();
        if tokio::time::timeout_at(deadline, operations.wait())
            .await
            .is_err()
        {
            warn!(
                "a bulk replay or purge did not finish within shutdown.timeout: it stopped between its steps"
            );
        }
        // With the listeners gone the ingest writers answer what waits and
        // end; every request the spool took is fsynced by now (each was
        // answered only after its fsync), and the appender ends.
        let _ = tokio::time::timeout_at(deadline, writers.wait()).await;
        if let Some(spool) = &spool {
            spool.stop().await;
            if tokio::time::timeout_at(deadline, spool_tasks.wait())
                .await
                .is_err()
            {
                warn!("the spool's appender did not finish within shutdown.timeout");
            }
        }

        info!("stopping stream readers, finishing in-flight deliveries");
        pipeline_token.cancel();
        // Readers notice within one blocking read (about a second).
        if tokio::time::timeout_at(deadline, pipeline.stopped())
            .await
            .is_err()
        {
            warn!("stream readers did not stop within shutdown.timeout");
        }
        deliveries.close();
        if tokio::time::timeout_at(deadline, deliveries.wait())
            .await
            .is_err()
        {
            warn!(
                in_flight = workers.busy(),
                "deliveries still in flight at shutdown.timeout; they stay pending in redis and will be claimed"
            );
            pipeline.abandon_deliveries();
        }
        // What remains (acknowledging finished deliveries, leaving the
        // consumer groups, closing connections) is quick unless Redis is
        // hung; either way the process exits within timeout + 1 s.
        let hard_stop = deadline + SHUTDOWN_GRACE;
        if tokio::time::timeout_at(hard_stop, pipeline.acks_flushed())
            .await
            .is_err()
        {
            warn!("some acknowledgements were not written; those events will be delivered again");
        }
        // Tidying only (a consumer that holds nothing is harmless): not
        // worth waiting for a Redis that is away.
        let tidy_stop = hard_stop.min(tokio::time::Instant::now() + TIDY_LIMIT);
        let _ = tokio::time::timeout_at(tidy_stop, pipeline.release_consumers()).await;
        background_token.cancel();
        let _ = tokio::time::timeout_at(hard_stop, background.wait()).await;
        let quit_stop = hard_stop.min(tokio::time::Instant::now() + TIDY_LIMIT);
        let _ = tokio::time::timeout_at(quit_stop, queue.quit()).await;
        info!("shutdown complete");
        Ok(())
    }
}
